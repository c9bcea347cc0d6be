# Runs moto's server for the lab (started by `moto.rs` with `python -c <this file>`).
#
# 1. It exits as soon as stdin reaches end-of-file: the lab holds the write end of that pipe,
#    so moto dies with the process that started it, even after SIGKILL.
# 2. It makes moto's EC2 tag lookup for one resource a dictionary lookup. moto 5.2.1 answers
#    `TaggedEC2Resource.get_tags()` with `describe_tags(filters={"resource-id": [id]})`, which
#    matches a regular expression against every tag of every resource: rendering N tagged
#    volumes costs N x (all tags), so a case-study estate (thousands of instances, volumes and
#    snapshots) turns every Describe* into minutes. The answer is the same list, in the same
#    order (that resource's tags in insertion order); any other filter goes to moto's own code.
import os
import sys
import threading

threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()

import moto.ec2.models.tags as _tags  # noqa: E402
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix  # noqa: E402

_describe_tags = _tags.TagBackend.describe_tags
_WILDCARDS = set("*?[]")


def _describe_tags_of_one(self, filters=None):
    if filters is not None and list(filters) == ["resource-id"]:
        ids = filters["resource-id"]
        if len(ids) == 1 and not _WILDCARDS.intersection(ids[0]):
            resource_id = ids[0]
            kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
            return [
                {"resource_id": resource_id, "key": k, "value": v, "resource_type": kind}
                for k, v in self.tags.get(resource_id, {}).items()
            ]
    return _describe_tags(self, filters)


_tags.TagBackend.describe_tags = _describe_tags_of_one

from moto.server import main  # noqa: E402

main(sys.argv[1:])
