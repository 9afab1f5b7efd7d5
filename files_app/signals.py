"""Keep a blob's reference count true whichever way a reference goes."""

from typing import Any

from django.db.models import F
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone

from files_app.models import FileReference, StoredFile


@receiver(post_delete, sender=FileReference)
def drop_reference_count(sender: type[FileReference], instance: FileReference, **kwargs: Any) -> None:
    # One place for every path (the API, a user deleted with their files, the admin): Django
    # runs this inside the deleting transaction, once per reference, so the count stays exact.
    StoredFile.objects.filter(pk=instance.stored_file_id).update(
        ref_count=F("ref_count") - 1, last_referenced=timezone.now()
    )
