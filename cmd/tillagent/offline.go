package main

import (
	"context"
	"time"

	"tillagent/internal/api"
	"tillagent/internal/store"
	"tillagent/sync/client"
)

// offlineGauges puts the offline rules in force on /metrics: head office's
// caps, how old the last feed is, whether redemption is blocked on the
// whole till and why, and how much of the till cap is used.
func offlineGauges(m *api.Metrics, st *store.Store, clock func() time.Time, syncs bool) {
	read := perScrape(func(ctx context.Context) (store.OfflineStatus, error) { // it reads the journal
		return st.OfflineStatus(ctx, clock(), syncs)
	})
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	m.Gauge("tillagent_offline_card_cap", "Head office's offline cap per card in points (0: none).",
		read(func(o store.OfflineStatus) float64 { return o.CardCap.InexactFloat64() }))
	m.Gauge("tillagent_offline_till_cap", "Head office's offline cap for all cards on this till in points (0: none).",
		read(func(o store.OfflineStatus) float64 { return o.TillCap.InexactFloat64() }))
	m.Gauge("tillagent_offline_till_cap_used", "Points this till redeemed that head office has not folded yet (counted against the till cap).",
		read(func(o store.OfflineStatus) float64 { return o.TillUsed.InexactFloat64() }))
	m.Gauge("tillagent_offline_max_age_seconds", "How long after the last feed the till may redeem (0: no maximum).",
		read(func(o store.OfflineStatus) float64 { return o.MaxAgeS }))
	m.Gauge("tillagent_offline_feed_age_seconds", "Age of the last feed that brought head office's offline rules.",
		read(func(o store.OfflineStatus) float64 { return o.AgeS }))
	m.Gauge("tillagent_offline_redeem_blocked", "1 while no card may redeem on this till (too long offline, first load pending, or till cap used up).",
		read(func(o store.OfflineStatus) float64 { return flag(o.Blocked != "") }))
	m.Gauge("tillagent_offline_too_long", "1 while redemption is blocked because the till has been without a feed longer than the maximum age.",
		read(func(o store.OfflineStatus) float64 { return flag(o.Blocked == store.OfflineTooLong) }))
	m.Gauge("tillagent_offline_first_load", "1 while redemption is blocked because no feed has brought head office's offline rules yet.",
		read(func(o store.OfflineStatus) float64 { return flag(o.Blocked == store.OfflineFirstLoad) }))
}

// offlineStatus is the offline part of /v1/status and /v1/sync (the
// error in place of it if the store cannot be read).
func offlineStatus(ctx context.Context, st *store.Store, clock func() time.Time, syncs bool) any {
	o, err := st.OfflineStatus(ctx, clock(), syncs)
	if err != nil {
		return map[string]string{"error": err.Error()}
	}
	return o
}

// syncWithOffline is the sync loop's status with the offline rules in
// force: GET /v1/sync and `sync now` answer it.
type syncWithOffline struct {
	client.Status
	Offline any `json:"offline"`
}

func withOffline(ctx context.Context, s client.Status, st *store.Store, clock func() time.Time) syncWithOffline {
	return syncWithOffline{Status: liveBacklog(ctx, s, st), Offline: offlineStatus(ctx, st, clock, true)}
}

// liveBacklog is the sync status with its backlog read from the journal
// now: the loop counts it at the end of each cycle, and a technician
// reading it after ten sales (or while head office is down for an hour)
// must not see the count of the last cycle. Unread, the loop's is kept.
func liveBacklog(ctx context.Context, s client.Status, st *store.Store) client.Status {
	if n, err := st.Backlog(ctx); err == nil {
		s.Backlog = n
	}
	return s
}
