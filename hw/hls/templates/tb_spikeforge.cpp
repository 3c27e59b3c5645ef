// tb_spikeforge.cpp: self-checking C testbench of spikeforge_top against the integer model.
//
// Reads DIR/tb_input.dat (the record count, then per record: op, label, shift_w, shift_th and
// the pixels; op 0 infer, 1 learn, 2 flush, 3 check the learned state) and DIR/tb_expected.dat
// (per infer/learn record: prediction, class counts, spikes per layer; per check record:
// weights, thresholds, reciprocals, dw, dth, LFSR state, pending count), both written from
// model.integer.IntegerNetwork. The memories start from weights.h (the checkpoint). Prints
// "N passed, M failed" (one check per output group and per learned memory) and exits 1 on
// any mismatch or unreadable file. Usage: tb_spikeforge [DIR] (default tb).
#include <stdio.h>

#include "spikeforge.h"
#include "weights.h"

using namespace spikeforge;

namespace {

const int OP_CHECK = 3;
const int MAX_REPORTS = 10;  // mismatch details printed on stderr

weight_t weights[W_TOTAL];
threshold_t thresholds[C_TOTAL];
recip_t reciprocals[C_TOTAL];
dw_t dw[W_TOTAL];
dth_t dth[C_TOTAL];

class Checker {
 public:
  explicit Checker(FILE* expected) : expected_(expected) {}

  // Compare n values with the next n expected values; one check for the group.
  template <class T>
  void group(long record, const char* what, const T* got, int n) {
    bool ok = true;
    for (int i = 0; i < n; ++i) {
      long long want = 0;
      if (fscanf(expected_, "%lld", &want) != 1) {
        fprintf(stderr, "record %ld: %s: tb_expected.dat ends early\n", record, what);
        truncated = true;
        ok = false;
        break;
      }
      if (static_cast<long long>(wide(got[i])) != want) {
        if (ok && reports_ < MAX_REPORTS) {
          fprintf(stderr, "record %ld: %s[%d] = %lld, expected %lld\n", record, what, i,
                  static_cast<long long>(wide(got[i])), want);
          ++reports_;
        }
        ok = false;
      }
    }
    (ok ? passed : failed) += 1;
  }

  long passed = 0;
  long failed = 0;
  bool truncated = false;

 private:
  FILE* expected_;
  int reports_ = 0;
};

FILE* open_data(const char* dir, const char* name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE* file = fopen(path, "r");
  if (file == nullptr) fprintf(stderr, "cannot open %s\n", path);
  return file;
}

}  // namespace

int main(int argc, char** argv) {
  const char* dir = argc > 1 ? argv[1] : "tb";
  FILE* input = open_data(dir, "tb_input.dat");
  FILE* expected = open_data(dir, "tb_expected.dat");
  if (input == nullptr || expected == nullptr) {
    printf("0 passed, 1 failed\n");
    return 1;
  }
  for (int n = 0; n < W_TOTAL; ++n) {
    weights[n] = INIT_WEIGHTS[n];
    dw[n] = 0;
  }
  for (int n = 0; n < C_TOTAL; ++n) {
    thresholds[n] = INIT_THRESHOLDS[n];
    reciprocals[n] = INIT_RECIPROCALS[n];
    dth[n] = 0;
  }
  lfsr_t lfsr = INIT_LFSR;
  pending_t pending = 0;
  Checker check(expected);
  long records = 0;
  if (fscanf(input, "%ld", &records) != 1) records = -1;
  for (long record = 0; record < records && !check.truncated; ++record) {
    long long head[4];
    pixel_t pixels[NEURONS[0]];
    bool ok = true;
    for (int i = 0; i < 4; ++i) ok = ok && fscanf(input, "%lld", &head[i]) == 1;
    for (int i = 0; i < NEURONS[0]; ++i) {
      long long p = 0;
      ok = ok && fscanf(input, "%lld", &p) == 1;
      pixels[i] = p;
    }
    if (!ok) {
      records = -1;
      break;
    }
    const int op = static_cast<int>(head[0]);
    if (op == OP_CHECK) {
      const int64_t registers[2] = {wide(lfsr), wide(pending)};
      check.group(record, "weights", weights, W_TOTAL);
      check.group(record, "thresholds", thresholds, C_TOTAL);
      check.group(record, "reciprocals", reciprocals, C_TOTAL);
      check.group(record, "dw", dw, W_TOTAL);
      check.group(record, "dth", dth, C_TOTAL);
      check.group(record, "lfsr", registers, 1);
      check.group(record, "pending", registers + 1, 1);
      continue;
    }
    class_t prediction = 0;
    count_t counts[CLASSES];
    spikes_t layer_spikes[LAYERS + 1];
    spikeforge_top(op, pixels, head[1], head[2], head[3], prediction, counts, layer_spikes,
                   weights, thresholds, reciprocals, dw, dth, lfsr, pending);
    if (op == MODE_FLUSH) continue;
    check.group(record, "prediction", &prediction, 1);
    check.group(record, "counts", counts, CLASSES);
    check.group(record, "layer_spikes", layer_spikes, LAYERS + 1);
  }
  if (records < 0) {
    fprintf(stderr, "tb_input.dat: malformed\n");
    check.failed += 1;
  }
  fclose(input);
  fclose(expected);
  printf("%ld passed, %ld failed\n", check.passed, check.failed);
  return check.failed ? 1 : 0;
}
