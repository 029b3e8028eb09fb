"""Learned image compression: entropy models, GDN, the mean-scale hyperprior and real bitstreams.

  entropy     GDN/IGDN, the factorized entropy bottleneck (Ballé et al. 2018) and the Gaussian
              conditional with its scale table, as CompressAI 1.2.8 defines them (tests prove the
              ports against CompressAI with random weights)
  hyperprior  the mean-scale hyperprior codec (Minnen, Ballé, Toderici 2018), CompressAI's
              `MeanScaleHyperprior`; the all-in-one codec (jaxir.models.allinone_codec) extends it
  bitstream   range coding of the latents with `constriction` and the .bin container
              (`jaxir compress` / `jaxir decompress`)
"""
