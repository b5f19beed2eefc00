# ratios.awk prints each benchmark's time as a ratio to the baseline measured
# in the same run (the machine is small and noisy: absolute numbers drift,
# ratios much less). Input: `go test -bench` output, possibly with -count N:
# each figure is then the median of its N samples. Pairs: name → baseline.
BEGIN {
	pair["EncodeCustomerEvent"] = "JSONBaselineEncodeCustomerEvent"
	pair["DecodeCustomerEvent"] = "JSONBaselineDecodeCustomerEvent"
	pair["EncodeDerived"] = "JSONBaselineEncodeDerived"
	pair["DecodeDerived"] = "JSONBaselineDecodeDerived"
	pair["Sign"] = "HMACBaseline"
	pair["Verify"] = "HMACBaseline"
	pair["Writer"] = "RawBatchInsert"
	# Throughput pairs (units per second, higher is better).
	rpair["ProcessorEOS/txn=5000/100ms/state=avro"] = "RawProduce"
	rpair["ProcessorEOS/txn=5000/100ms/state=json"] = "RawProduce"
	rpair["Writer"] = "RawBatchInsert"
	rpair["Dispatch"] = "BareHTTPPost"
}
/^Benchmark/ {
	name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
	for (i = 2; i <= NF; i++) {
		if ($(i+1) == "ns/op") ns_s[name, ++ns_n[name]] = $i
		if ($(i+1) ~ /\/s$/) rate_s[name, ++rate_n[name]] = $i
		if ($(i+1) == "cpu-µs/op") cpu_s[name, ++cpu_n[name]] = $i
	}
}
# median of the n samples s[name, 1..n].
function median(s, name, n,    v, i, j, t) {
	for (i = 1; i <= n; i++) v[i] = s[name, i] + 0
	for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] > v[j]; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
	return (n % 2) ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2
}
END {
	for (n in ns_n) ns[n] = median(ns_s, n, ns_n[n])
	for (n in rate_n) rate[n] = median(rate_s, n, rate_n[n])
	for (n in cpu_n) cpu[n] = median(cpu_s, n, cpu_n[n])
	printf "\n%-22s %12s %-32s %12s %8s\n", "benchmark", "ns/op", "baseline (same run)", "ns/op", "ratio"
	for (n in pair) {
		b = pair[n]
		if ((n in ns) && (b in ns) && ns[b] > 0)
			printf "%-22s %12.0f %-32s %12.0f %7.2fx\n", n, ns[n], b, ns[b], ns[n] / ns[b]
	}
	printf "\n%-42s %12s %-16s %12s %8s\n", "throughput", "per s", "baseline", "per s", "ratio"
	for (n in rpair) {
		b = rpair[n]
		if ((n in rate) && (b in rate) && rate[b] > 0)
			printf "%-42s %12.0f %-16s %12.0f %7.2fx\n", n, rate[n], b, rate[b], rate[n] / rate[b]
	}
	# CPU per operation (both CPU-bound in one process): baseline cost /
	# cost is the throughput ratio an idle machine would show.
	printf "\n%-42s %12s %-16s %12s %8s\n", "CPU per operation", "µs", "baseline", "µs", "ratio"
	for (n in rpair) {
		b = rpair[n]
		if ((n in cpu) && (b in cpu) && cpu[n] > 0)
			printf "%-42s %12.1f %-16s %12.1f %7.2fx\n", n, cpu[n], b, cpu[b], cpu[b] / cpu[n]
	}
}
