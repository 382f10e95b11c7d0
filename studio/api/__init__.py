"""Studio's HTTP API: a face (the top layer, like the CLI) over the durable job queue
(studio.jobs) and the engine (studio.pipeline). ``studio.api.app.create_app`` builds the
app; ``studio serve`` runs it under uvicorn."""
