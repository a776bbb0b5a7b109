package rotate

import (
	dto "github.com/prometheus/client_model/go"
)

// refreshCount reads keyward_token_refreshes_total{token=name,result=result}.
func refreshCount(m *TokenMetrics, name, result string) float64 {
	var d dto.Metric
	if err := m.refreshes.WithLabelValues(name, result).Write(&d); err != nil {
		return -1
	}
	return d.GetCounter().GetValue()
}
