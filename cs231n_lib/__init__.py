"""cs231n_lib: convolutional networks from first principles in numpy.

Layers follow the CS231n contract: ``forward(...) -> (out, cache)`` and
``backward(dout, cache) -> gradients in input order``. Tensors are NCHW.
"""

__version__ = "0.1.0"
