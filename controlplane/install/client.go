package install

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// Client talks to one cluster's API server for Installer and Run.
type Client struct {
	dyn    dynamic.Interface
	kube   kubernetes.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

// NewClient returns a Client for the API server cfg names.
func NewClient(cfg *rest.Config) (*Client, error) {
	if cfg == nil {
		return nil, errors.New("no rest config")
	}
	// An install sends a few requests per object and a check one access
	// review per permission: more than client-go's default 5 per second.
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	return &Client{dyn: dyn, kube: kube, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}, nil
}

// resource returns the dynamic interface for obj's kind and namespace.
// A kind the API server does not serve yet (a CRD applied a moment ago)
// resets the discovery cache once before it is an error.
func (c *Client) resource(obj *unstructured.Unstructured) (dynamic.ResourceInterface, *meta.RESTMapping, error) {
	gvk := obj.GroupVersionKind()
	mapping, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		c.mapper.Reset()
		if mapping, err = c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return nil, nil, fmt.Errorf("the API server does not serve %s: %w", gvk, err)
		}
	}
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace()), mapping, nil
	}
	return c.dyn.Resource(mapping.Resource), mapping, nil
}

// ref names obj as kubectl does: kind/name, lower case.
func ref(obj *unstructured.Unstructured) string {
	return strings.ToLower(obj.GetKind()) + "/" + obj.GetName()
}

// serverVersion returns the API server's version.
func (c *Client) serverVersion() (major, minor, git string, err error) {
	v, err := c.kube.Discovery().ServerVersion()
	if err != nil {
		return "", "", "", err
	}
	return v.Major, v.Minor, v.GitVersion, nil
}
