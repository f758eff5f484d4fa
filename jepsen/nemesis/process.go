package nemesis

import "context"

// killFault: kill -9 the leader or a random node; restart it at heal.
type killFault struct{}

func (killFault) kind() string { return Kill }

func (killFault) inject(ctx context.Context, n *Nemesis, start startFunc) func() {
	id := n.random()
	if n.rng.IntN(2) == 0 {
		id = n.leader(ctx)
	}
	start(id, "kill -9, restart at heal")
	if err := n.C.Kill(id); err != nil {
		n.Log("nemesis: kill %s: %v", id, err)
	}
	return func() {
		if err := n.C.Restart(id); err != nil {
			n.Log("nemesis: restart %s: %v", id, err)
		}
	}
}

// pauseFault: SIGSTOP the leader; SIGCONT at heal.
type pauseFault struct{}

func (pauseFault) kind() string { return Pause }

func (pauseFault) inject(ctx context.Context, n *Nemesis, start startFunc) func() {
	id := n.leader(ctx)
	start(id, "SIGSTOP the leader, SIGCONT at heal")
	if err := n.C.Pause(id); err != nil {
		n.Log("nemesis: pause %s: %v", id, err)
	}
	return func() { _ = n.C.Resume(id) }
}
