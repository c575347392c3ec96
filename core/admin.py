"""Admin pieces every app shares."""


class ReadOnlyMixin:
    """Rows the code writes (a pipeline's evidence, a sender's log, a report): the admin shows them,
    nobody adds, edits or deletes them by hand."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
