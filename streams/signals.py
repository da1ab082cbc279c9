"""What the media adapter (streams.media) reports upward; streams.services acts on it.

Every signal is sent with `sender=MEDIA` and `session_id` (a string), from a database thread: receivers may use
the ORM. They are sent in the order the media engine reported them.
"""

from django.dispatch import Signal

MEDIA = "streams.media"

# The first audio of a broadcaster's connection arrived (the first one, or one replacing a lost one).
publisher_connected = Signal()
# The broadcaster's connection failed or closed, or its audio stopped; a new offer within the grace period
# replaces it.
publisher_gone = Signal()
# `count` connected listeners now; `listener_ids`: the user ids of the people they are (each once).
listener_count_changed = Signal()
# The server's denoiser stopped (`denoised` False: busy, the stream is passed through) or resumed denoising.
denoise_mode_changed = Signal()
# This server process is stopping; `session_ids` are the streams whose media it holds.
media_stopping = Signal()
# An uploaded file someone asked to keep was processed: `owner_id`, `session_id` (the new recording's),
# `finished` (a FinishedRecording already under RECORDINGS_DIR), `title`, `denoise`. Sent from the file
# denoiser's thread; receivers may use the ORM.
upload_processed = Signal()
