package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestClusterReplicatesAStream(t *testing.T) {
	start := time.Now()
	c := StartCluster(t, 3)
	t.Logf("cluster up in %s", time.Since(start))
	nc, err := nats.Connect(c.ClientURLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stream in %s", time.Since(start))
	if _, err := js.Publish(ctx, "t.1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.State.LastSeq != 1 {
		t.Fatalf("%v %+v", err, info)
	}
	t.Run("a proxy that is severed cuts its client off", func(t *testing.T) {
		p := NewProxy(t, c.ClientURL(0)[len("nats://"):])
		pc, err := nats.Connect(p.URL(), nats.ReconnectWait(50*time.Millisecond), nats.MaxReconnects(-1))
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		p.Sever()
		deadline := time.Now().Add(5 * time.Second)
		for pc.IsConnected() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if pc.IsConnected() {
			t.Fatal("still connected through a severed proxy")
		}
		p.Restore()
		for !pc.IsConnected() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if !pc.IsConnected() {
			t.Fatal("did not reconnect after restore")
		}
	})
	t.Run("a killed node leaves the stream available", func(t *testing.T) {
		c.Kill(2)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for {
			if _, err := js.Publish(ctx, "t.2", []byte("y")); err == nil {
				break
			} else if ctx.Err() != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	t.Logf("total %s", time.Since(start))
}
