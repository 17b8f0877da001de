"""Data pipeline: records, loaders, images, prompt templates, collation, converters, synthetic geometry."""

from .collate import PromptBatch, PromptCollator, PromptDataset, encode_prompts, mm_token_type_ids
from .images import ImageConfig, ImageError, image_factor, load_image, resize_image
from .loaders import RecordSet, load_records
from .record import BadRecord, DataError, Record, register_task_name
from .templates import build_messages

__all__ = [
    "BadRecord", "DataError", "ImageConfig", "ImageError", "PromptBatch", "PromptCollator", "PromptDataset",
    "Record", "RecordSet", "build_messages", "encode_prompts", "image_factor", "load_image", "load_records",
    "mm_token_type_ids", "register_task_name", "resize_image",
]
