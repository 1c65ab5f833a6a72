"""Task stage: the LightningModule that trains and evaluates any registered network."""
