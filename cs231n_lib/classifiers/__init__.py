"""Models that meet the Solver's contract: ``params`` dict and ``loss(X, y=None)``.

Import from the submodules: ``cnn.ThreeLayerConvNet``, ``fc_net.FullyConnectedNet``,
``convnet.ConvNet``.
"""
