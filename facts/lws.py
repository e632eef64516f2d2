"""LeaderWorkerSet's own names: its API version and the labels its controller puts on every pod of a group
(kubernetes-sigs/lws ``api/leaderworkerset/v1/leaderworkerset_types.go``). pod_scripts/wait_for_group.py keeps
its own copy: the pods do not have the library."""

LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1"
LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
LWS_WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"
# On every pod of one group (leader and workers), the same for all of them and no other group's.
LWS_GROUP_KEY_LABEL = "leaderworkerset.sigs.k8s.io/group-key"
LWS_GROUP_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/group-index"
LWS_REVISION_LABEL = "leaderworkerset.sigs.k8s.io/template-revision-hash"
