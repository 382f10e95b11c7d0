"""Shot generation: keyframe candidates on Ray, scoring and selection, camera-move clips."""
