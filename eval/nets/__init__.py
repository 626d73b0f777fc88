"""Networks of the paper's evaluation models, defined here with the parameter names and shapes
of their public releases, so the files users download load strictly into them:

- `fid_inception`: the TensorFlow FID Inception as pytorch-fid publishes it (FID),
- `face_recon`: Deep3DFaceRecon's `net_recon` (ResNet-50 + 257-coefficient head; AED / APD).

CSIM's ArcFace backbone is pipeline/faces/iresnet.py (the photo tool embeds faces with it too);
pipeline/weight_files/formats.py tells the file formats apart (ONNX, TorchScript, torch state dict)
without running anything, so a wrong file is refused before any GPU memory is taken.
"""
