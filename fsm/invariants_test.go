package fsm

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

func TestLeaseViolations(t *testing.T) {
	const deadline = int64(100 * time.Second)
	lease := func(id uint64, node string, tasks ...uint32) *fsmpb.RestoreLease {
		return &fsmpb.RestoreLease{Id: id, JobId: 7, Node: node, Deadline: deadline, Tasks: tasks, Attempts: make([]byte, len(tasks)), Incarnation: "i1"}
	}
	env := func(typ fsmpb.CommandType, now int64, body proto.Message) *fsmpb.Envelope {
		b, err := proto.Marshal(body)
		require.NoError(t, err)
		return &fsmpb.Envelope{Version: 1, Type: typ, Now: now, Body: b}
	}
	report := func(leaseID uint64, done ...uint32) *fsmpb.Envelope {
		cmd := &fsmpb.RestoreReport{JobId: 7, LeaseId: leaseID}
		for _, t := range done {
			cmd.Done = append(cmd.Done, &fsmpb.TaskDone{Task: t})
		}
		return env(fsmpb.CommandType_COMMAND_TYPE_RESTORE_REPORT, deadline-1, cmd)
	}
	expire := func(now int64, cmd *fsmpb.ExpireRestoreLeases) *fsmpb.Envelope {
		return env(fsmpb.CommandType_COMMAND_TYPE_EXPIRE_RESTORE_LEASES, now, cmd)
	}
	grant := env(fsmpb.CommandType_COMMAND_TYPE_RESTORE_GRANT, deadline-1, &fsmpb.RestoreGrant{JobId: 7, Node: "n2", MaxTasks: 4})
	for _, tc := range []struct {
		name          string
		before, after []*fsmpb.RestoreLease
		env           *fsmpb.Envelope
		jobFinished   bool
		want          string // "" none, else a part of the one violation
	}{
		{"a report ends its lease", []*fsmpb.RestoreLease{lease(1, "n1", 0, 1)}, nil, report(1), false, ""},
		{"a report of another lease ends it", []*fsmpb.RestoreLease{lease(1, "n1", 0, 1), lease(2, "n2", 2)}, []*fsmpb.RestoreLease{lease(2, "n2", 2)}, report(2, 0), false, "does not name its task 1"},
		{"a late report of an expired lease takes its tasks from their new lease", []*fsmpb.RestoreLease{lease(1, "n1", 0, 1)}, nil, report(9, 0, 1), false, ""},
		{"an expiry past the deadline", []*fsmpb.RestoreLease{lease(1, "n1", 0)}, nil, expire(deadline+1, &fsmpb.ExpireRestoreLeases{}), false, ""},
		{"an expiry before the deadline", []*fsmpb.RestoreLease{lease(1, "n1", 0)}, nil, expire(deadline-int64(time.Second), &fsmpb.ExpireRestoreLeases{}), false, "1s before the deadline"},
		{"the holder restarted", []*fsmpb.RestoreLease{lease(1, "n1", 0)}, nil, expire(0, &fsmpb.ExpireRestoreLeases{Node: "n1", Incarnation: "i2"}), false, ""},
		{"the same incarnation asking is no restart", []*fsmpb.RestoreLease{lease(1, "n1", 0)}, nil, expire(0, &fsmpb.ExpireRestoreLeases{Node: "n1", Incarnation: "i1"}), false, "before the deadline"},
		{"the holder gone from gossip", []*fsmpb.RestoreLease{lease(1, "n1", 0)}, nil, expire(0, &fsmpb.ExpireRestoreLeases{GoneNodes: []string{"n1"}}), false, ""},
		{"a grant takes another lease back", []*fsmpb.RestoreLease{lease(1, "n1", 0, 1)}, []*fsmpb.RestoreLease{lease(2, "n2", 0, 1)}, grant, false, "its job still runs"},
		{"a lease ends with its job", []*fsmpb.RestoreLease{lease(1, "n1", 0, 1)}, nil, grant, true, ""},
		{"a new grant beside a live lease", []*fsmpb.RestoreLease{lease(1, "n1", 0, 1)}, []*fsmpb.RestoreLease{lease(1, "n1", 0, 1), lease(2, "n2", 2, 3)}, grant, false, ""},
		{"a task in two leases", []*fsmpb.RestoreLease{lease(1, "n1", 0, 1)}, []*fsmpb.RestoreLease{lease(1, "n1", 0, 1), lease(2, "n2", 1, 2)}, grant, false, "task 1 of job 7 is in lease 1 of n1 and lease 2 of n2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := newTables()
			for _, l := range tc.before {
				before.restoreLeases.put(l)
			}
			after := newTables()
			for _, l := range tc.after {
				after.restoreLeases.put(l)
			}
			job := &fsmpb.RestoreJob{Id: 7, State: fsmpb.RestoreState_RESTORE_STATE_COPYING}
			if tc.jobFinished {
				job.State, job.FinishedAt = fsmpb.RestoreState_RESTORE_STATE_COMPLETED, deadline
			}
			after.restoreJobs.put(job)
			got := leaseViolations(leaseMap(before), after, tc.env)
			if tc.want == "" {
				require.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			require.Contains(t, got[0], tc.want)
		})
	}
}
