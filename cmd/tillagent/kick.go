package main

import (
	"context"
	"log/slog"

	"tillagent/sync/client"
)

// kickSync runs a sync cycle after each sale that spent points (kicks,
// coalesced: one cycle covers the sales before it), so that head office
// folds the redemptions at once and the offline caps, which count this
// till's redemptions head office has not folded, do not hold an online
// till for a whole sync.interval. While the last cycle got no feed (head
// office unreachable or failing) the loop's back-off stands: a till cut off
// from head office does not try again on every sale. The cycle is the
// loop's (client.Client.Kick): kicks that come while it runs wait for it
// here, one for them all.
func kickSync(ctx context.Context, c *client.Client, kicks <-chan struct{}, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-kicks:
		}
		if c.Status().Unreachable() {
			continue // head office did not answer the last cycle (refused entries alone do not count)
		}
		if err := c.Kick(ctx); err != nil && ctx.Err() == nil {
			log.Debug("sync after a redemption failed; the loop retries", "err", err)
		}
	}
}
