"""Data: the release readers, feature stores, the prepared directory, schema and tf.data.

readers      annotation files of the public releases -> plain records (no TensorFlow)
features     HDF5 / .npy clip-feature stores
prepared     a prepared data directory: manifest, vocabulary, shards
schema       the one TFRecord schema: encode (data_prep) and decode (tf.data)
pipeline     shards -> interleave -> parse -> sentences -> shuffle -> padded batch
"""
