"""Converting original Townlet training configs (`townlet config migrate`); torch-free.

`migrate(mapping)` returns the converted config and a note for every field renamed,
dropped, changed in meaning or filled with the original's default; what cannot be
converted raises ConfigError naming the field. `docs/migrating.md` lists every field.
"""

from townlet_core.migration.convert import MigrationResult, Note, NoteKind, migrate
from townlet_core.migration.original import original_fields

__all__ = ["MigrationResult", "Note", "NoteKind", "migrate", "original_fields"]
