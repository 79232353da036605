"""The abuse set behind benchmarks/abuse.py: a runner for the real CLI, judges, dataset builders, and one
module of attempts per kind (text, coco_json, photos, links, kills, disk, cli, claim)."""
