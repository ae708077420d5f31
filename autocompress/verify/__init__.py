"""``autocompress verify``: the run's front measured on the profile's device, against its predictions."""
