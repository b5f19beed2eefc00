# ratios.awk prints each benchmark's time as a ratio to the baseline measured
# in the same run (the machine is small and noisy: absolute numbers drift,
# ratios much less). Input: `go test -bench` output. Pairs: name → baseline.
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
		if ($(i+1) == "ns/op") ns[name] = $i
		if ($(i+1) ~ /\/s$/) rate[name] = $i
		if ($(i+1) == "cpu-µs/op") cpu[name] = $i
	}
}
END {
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
