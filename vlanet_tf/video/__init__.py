"""From video files to clip features, in the library so that predict can extract.

backbones    the image networks (keras.applications and a tiny test CNN) and their
             weights' hash
extractor    ExtractorSpec: backbone, weights' hash, frame rate, clip length, sampling,
             feature size; the Charades-STA and DiDeMo presets; the mismatch check
decode       streamed PyAV decoding, resampled to the spec's frame rate
extract      one video -> [T, F] clip features; a folder -> a resumable feature store
"""
