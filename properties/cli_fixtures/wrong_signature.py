"""A callable with the wrong signature: no num_queries, boxes and labels as separate lists."""


def build(labels, boxes, class_embed):
    raise AssertionError("never called with these arguments")
