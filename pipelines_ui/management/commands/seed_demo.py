from django.core.management.base import BaseCommand

from pipelines_ui.services import seed_demo


class Command(BaseCommand):
    help = "Create the demo workspace, its user, the `local` compute target and a sample pipeline."

    def handle(self, *args, **options):
        result = seed_demo()
        self.stdout.write(result.describe())
