// Throwaway module used only by test/servers/kube.sh to build the real
// kube-apiserver and kubelet for integration tests. The script copies it
// into the git-ignored cache, adds the staging replaces and builds there;
// it is never part of the keyward module.
module keyward.test/kube

go 1.26.0

require k8s.io/kubernetes v1.36.3

tool (
	k8s.io/kubernetes/cmd/kube-apiserver
	k8s.io/kubernetes/cmd/kubelet
)
