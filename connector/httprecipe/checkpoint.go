package httprecipe

import (
	"encoding/json"
	"sort"

	"github.com/lethe-privacy/lethe/connector"
)

// checkpoint is what a task keeps between Erase calls: per batch (by a
// digest, so the checkpoint names nobody) how far its steps went, what they
// captured (the vendor's job ids), and whether the vendor reports it done.
type checkpoint struct {
	Units map[string]*unitState `json:"units,omitempty"`
	Polls int                   `json:"polls,omitempty"`
}

type unitState struct {
	Step int               `json:"step"`
	Vars map[string]string `json:"vars,omitempty"`
	Done bool              `json:"done,omitempty"`
	// Held keeps the keys of a batch stopped between two steps: the first
	// step may make them unfindable (a soft-deleted user leaves search),
	// and the second must still run. They are vendor record ids, sealed at
	// rest like the whole checkpoint, and gone when the batch completes.
	Held []key `json:"held,omitempty"`
}

func decodeCheckpoint(s string) checkpoint {
	var cp checkpoint
	if s != "" && json.Unmarshal([]byte(s), &cp) != nil {
		cp = checkpoint{} // not ours (a changed data map): start over
	}
	if cp.Units == nil {
		cp.Units = map[string]*unitState{}
	}
	return cp
}

func (cp checkpoint) sortedUnits() []string {
	out := make([]string, 0, len(cp.Units))
	for k := range cp.Units {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// encode keeps the checkpoint within connector.MaxCheckpointLen by
// dropping finished batches first (they only keep a repeat from being
// submitted, which vendors answer as a duplicate), never a batch still
// waiting or held between steps.
func (cp checkpoint) encode() string {
	b, _ := json.Marshal(cp)
	if len(b) <= connector.MaxCheckpointLen {
		return string(b)
	}
	short := checkpoint{Units: map[string]*unitState{}, Polls: cp.Polls}
	for _, id := range cp.sortedUnits() {
		if st := cp.Units[id]; !st.Done {
			short.Units[id] = st
		}
	}
	b, _ = json.Marshal(short)
	return string(b)
}

func sortStrings(s []string) { sort.Strings(s) }
