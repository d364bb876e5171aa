"""The permission policy: every authorisation rule lives in this package, one module per
area (base: who is active, capabilities, object permissions; people; data; projects;
workflows: access and release requests; directcare), all of it read as ``sde.policy``.

``check_<verb>_<noun>(user, obj)`` raises PermissionDenied (or NotFound when the user
may not even see the object); ``user_can_<verb>_<noun>(user, obj)`` returns a bool for
templates; ``visible_<nouns>_for(user)`` is the queryset behind every list and lookup.
django-guardian is imported in ``base`` and nowhere else; object permissions never honour
superuser status or global permissions.
"""

from __future__ import annotations

from sde.policy.base import *  # noqa: F403
from sde.policy.data import *  # noqa: F403
from sde.policy.directcare import *  # noqa: F403
from sde.policy.people import *  # noqa: F403
from sde.policy.projects import *  # noqa: F403
from sde.policy.workflows import *  # noqa: F403
