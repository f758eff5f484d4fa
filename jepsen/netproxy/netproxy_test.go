package netproxy

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := c.Write(append(sc.Bytes(), '\n')); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(conn net.Conn, r *bufio.Reader, msg string, timeout time.Duration) (string, error) {
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	return r.ReadString('\n')
}

func TestProxyCutDelayHeal(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last, after the echo server stops
	target := echoServer(t)
	p, err := Start("a->b", "", target)
	require.NoError(t, err)
	defer p.Close()

	conn, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer conn.Close()
	r := bufio.NewReader(conn)
	got, err := roundTrip(conn, r, "hello", time.Second)
	require.NoError(t, err)
	require.Equal(t, "hello\n", got)

	p.Set(State{Cut: true})
	_, err = roundTrip(conn, r, "lost", 200*time.Millisecond)
	require.Error(t, err, "a cut link must black-hole")

	p.Heal()
	// the connection that lived through the cut is closed; a new one works
	_, err = roundTrip(conn, r, "after", time.Second)
	require.Error(t, err)
	conn2, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer conn2.Close()
	p.Set(State{Delay: 100 * time.Millisecond})
	start := time.Now()
	got, err = roundTrip(conn2, bufio.NewReader(conn2), "slow", 2*time.Second)
	require.NoError(t, err)
	require.Equal(t, "slow\n", got)
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond) // both directions
}
