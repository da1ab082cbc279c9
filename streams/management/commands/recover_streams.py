from django.core.management.base import BaseCommand

from streams.services import recover_after_restart


class Command(BaseCommand):
    help = "End streams left live by a crashed run and save their partial recordings. Run before serving."

    def handle(self, *args, **options) -> None:
        ended = recover_after_restart()
        if ended:
            saved = sum(1 for stream in ended if stream.recording is not None)
            self.stdout.write(f"Ended {len(ended)} stream(s) left live by the last run; saved {saved} recording(s).")
