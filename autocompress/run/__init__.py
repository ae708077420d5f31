"""The run folder ``results/<run>/``: its one typed model (``Run``, ``Trial``), the one front
function and the only place that knows the folder's file names."""
