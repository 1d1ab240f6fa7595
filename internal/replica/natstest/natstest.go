// Package natstest runs real NATS JetStream clusters in-process for tests:
// several nats-server instances joined by cluster routes on loopback, each
// with its own JetStream store, plus a TCP proxy that a test can sever to
// cut one client off from the cluster.
package natstest

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a NATS JetStream cluster of in-process servers.
type Cluster struct {
	t     testing.TB
	name  string
	mu    sync.Mutex
	nodes []*node
}

type node struct {
	name    string
	dir     string
	srv     *server.Server
	client  int // client port, kept across restarts
	cluster int // route port, kept across restarts
}

// StartCluster starts n servers joined in one cluster and waits until
// JetStream has elected a meta leader. Every listener is on 127.0.0.1 with
// a kernel-chosen port. Servers do not advertise each other's client URLs,
// so a client only ever connects to the URLs it was given (a proxy in front
// of one server stays the only way in). The cluster is shut down when the
// test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, name: "vigil-test"}
	base := t.TempDir()
	ports := freePorts(t, 2*n)
	for i := range n {
		c.nodes = append(c.nodes, &node{
			name:    fmt.Sprintf("n%d", i+1),
			dir:     filepath.Join(base, fmt.Sprintf("n%d", i+1)),
			client:  ports[2*i],
			cluster: ports[2*i+1],
		})
	}
	for i := range c.nodes {
		c.start(i)
	}
	t.Cleanup(c.Shutdown)
	c.WaitLeader(30 * time.Second)
	return c
}

// freePorts reserves distinct loopback ports. Routes must be known before
// the servers start, so the ports are chosen by binding :0 and released just
// before use.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	lns := make([]net.Listener, n)
	ports := make([]int, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("reserve a loopback port: %v", err)
		}
		lns[i] = ln
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	var routes []*url.URL
	for j, other := range c.nodes {
		if j != i {
			routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", other.cluster)})
		}
	}
	opts := &server.Options{
		ServerName: nd.name,
		Host:       "127.0.0.1",
		Port:       nd.client,
		NoSigs:     true,
		NoLog:      true,
		JetStream:  true,
		StoreDir:   nd.dir,
		Cluster: server.ClusterOpts{
			Name:        c.name,
			Host:        "127.0.0.1",
			Port:        nd.cluster,
			NoAdvertise: true,
		},
		Routes: routes,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		c.t.Fatalf("start nats node %s: %v", nd.name, err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		c.t.Fatalf("nats node %s did not start", nd.name)
	}
	c.mu.Lock()
	nd.srv = srv
	c.mu.Unlock()
}

// Size returns the number of servers (running or not).
func (c *Cluster) Size() int { return len(c.nodes) }

// ClientURL returns the client URL of server i.
func (c *Cluster) ClientURL(i int) string {
	return fmt.Sprintf("nats://127.0.0.1:%d", c.nodes[i].client)
}

// ClientURLs returns every server's client URL, comma-separated, as
// nats_url takes them.
func (c *Cluster) ClientURLs() string {
	urls := make([]string, len(c.nodes))
	for i := range c.nodes {
		urls[i] = c.ClientURL(i)
	}
	return strings.Join(urls, ",")
}

// Kill shuts server i down abruptly (its store stays on disk).
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	srv := c.nodes[i].srv
	c.nodes[i].srv = nil
	c.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart starts a killed server i again with its store and ports.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.start(i)
}

// WaitLeader waits until a running server reports a JetStream meta leader
// and every running server is current with it.
func (c *Cluster) WaitLeader(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c.settled() {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	c.t.Fatalf("nats cluster has no JetStream meta leader after %s", timeout)
}

func (c *Cluster) settled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	leader := false
	for _, nd := range c.nodes {
		if nd.srv == nil {
			continue
		}
		if nd.srv.JetStreamIsLeader() {
			leader = true
		}
		if !nd.srv.JetStreamIsCurrent() {
			return false
		}
	}
	return leader
}

// Shutdown stops every server.
func (c *Cluster) Shutdown() {
	for i := range c.nodes {
		c.Kill(i)
	}
}
