"""Evaluation metrics (CSIM, FID, APD/AED/AGD, LPIPS, PSNR)."""
