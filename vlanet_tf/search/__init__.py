"""Searching a video collection with a trained run (index, two-stage retrieval, page).

`index.build_index` caches each video's proposals; `retrieval.Searcher` ranks the
collection for a sentence (FAISS MIPS on w_M, then the cascade on the top N);
`web.serve` is the page; `corpus.evaluate` the corpus-level recall. The main is
`python -m vlanet_tf.search {index,query,serve,evaluate}`.
"""
