"""The edit: OpenTimelineIO assembly, conform and encode per channel, stills."""
