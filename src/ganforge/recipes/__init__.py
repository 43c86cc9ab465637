"""One file per GAN family, declared below by name (registry.RECIPES imports a family's module the first time
its class is asked for, so `import ganforge`, `ganforge --help` or a run of one family do not pay for all of
them: docs/performance.md, start-up). A new family is one line here plus its file; tests/test_layering.py checks that each
module in this package registers exactly the names this table gives it."""

# recipe name -> module in this package (its `@RECIPES.register(name)`)
MODULES = {
    "gan": "gan",
    "dcgan": "dcgan",
    "cgan": "cgan",
    "wgan": "wgan",
    "wgan_gp": "wgan_gp",
    "sngan": "sngan",
    "lsgan": "lsgan",
    "progan": "progan",
    "stylegan": "stylegan",
    "r3gan": "r3gan",
    "pix2pix": "pix2pix",
    "cyclegan": "cyclegan",
    "srgan": "srgan",
    "text2image": "text2image",
    "simgan": "simgan",
    "ssgan": "ssgan",
    "dann": "dann",
}
