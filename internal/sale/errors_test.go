package sale

import (
	"strings"
	"testing"

	"tillagent/checkout"
	"tillagent/internal/store"
)

// TestOfflineRefusalNamesTheRule: the cashier's message for
// redeem.offline_limit says which rule binds, with the number in correct
// Russian: the card's cap ("с этой карты"), the till's ("на кассе", all
// cards), nothing left of either, too long offline, the first load.
func TestOfflineRefusalNamesTheRule(t *testing.T) {
	for _, tc := range []struct {
		limit, max string
		want       []string
		not        []string
	}{
		{store.OfflineCardCap, "50", []string{"с этой карты", "не более 50 баллов"}, []string{"на кассе"}},
		{store.OfflineCardCap, "21", []string{"не более 21 балла"}, nil},
		{store.OfflineCardCap, "0", []string{"С этой карты сейчас нельзя списать баллы", "исчерпан"}, []string{"не более 0"}},
		{store.OfflineTillCap, "100", []string{"на кассе", "не более 100 баллов", "по всем картам"}, []string{"с карты", "с этой карты"}},
		{store.OfflineTillCap, "1", []string{"не более 1 балла"}, nil},
		{store.OfflineTillCap, "0", []string{"На кассе сейчас нельзя списать баллы", "общий предел"}, []string{"не более 0", "с карты"}},
		{store.OfflineTooLong, "0", []string{"слишком долго без связи"}, []string{"не более"}},
		{store.OfflineFirstLoad, "0", []string{"первая загрузка"}, []string{"не более"}},
	} {
		e := offlineRefusal(&checkout.RedeemError{Card: "2900000000018", Requested: checkout.MustPoints("200"), Max: checkout.MustPoints(tc.max), Limit: tc.limit})
		if e.Code != "redeem.offline_limit" || !strings.Contains(e.Err.Error(), tc.limit) {
			t.Errorf("%s %s: code %s, detail %v", tc.limit, tc.max, e.Code, e.Err)
		}
		for _, w := range tc.want {
			if !strings.Contains(e.Cashier, w) {
				t.Errorf("%s max %s: message %q lacks %q", tc.limit, tc.max, e.Cashier, w)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(e.Cashier, w) {
				t.Errorf("%s max %s: message %q says %q", tc.limit, tc.max, e.Cashier, w)
			}
		}
	}
}

func TestPointsText(t *testing.T) {
	for in, want := range map[string]string{"1": "1 балла", "2": "2 баллов", "5": "5 баллов", "11": "11 баллов", "21": "21 балла",
		"111": "111 баллов", "101": "101 балла", "1.5": "1,5 балла", "0": "0 баллов"} {
		if got := pointsText(checkout.MustPoints(in).Decimal()); got != want {
			t.Errorf("pointsText(%s) = %q, want %q", in, got, want)
		}
	}
}
