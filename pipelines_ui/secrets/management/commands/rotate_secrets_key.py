"""`manage.py rotate_secrets_key`: every stored secret re-encrypted with the newest key."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from pipelines_ui.secrets import keys
from pipelines_ui.secrets.rotation import rotate_all


class Command(BaseCommand):
    help = (f"Re-encrypt every workspace secret with the first key of {keys.KEY_VARIABLE}. "
            "Then the other keys can be removed from it.")

    def handle(self, *args, **options):
        try:
            rotation = rotate_all()
        except keys.KeysUnusable as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{rotation.rotated} secrets re-encrypted with the newest key.")
        if rotation.changed_meanwhile:
            self.stdout.write(f"{rotation.changed_meanwhile} were set again meanwhile and "
                              "left as they are; run this again before removing a key.")
        if rotation.unreadable:
            raise CommandError(
                f"{len(rotation.unreadable)} secrets could not be decrypted with any key of "
                f"{keys.KEY_VARIABLE}: {', '.join(rotation.unreadable)}. Add the key they were "
                "stored under and run this again, or set their values again.")
