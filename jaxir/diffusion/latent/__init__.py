"""Latent diffusion (Stable Diffusion stack): the KL autoencoder, the CLIP text encoder, LoRA,
classifier-free guidance and DDIM sampling in latent space. The U-Net is `jaxir.models.ldm_unet`."""
