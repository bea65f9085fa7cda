// Starting a run of the store, or resuming the same one: the trace, capture and import jobs
// key a run by what it covers (RunSpec::trace_key); running the same job again continues its
// incomplete run and skips the documents already finished, or finds the complete run and
// does nothing.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "analysis/routing_store.h"
#include "engine/expert_mask.h"
#include "engine/model_config.h"

namespace moe::analysis {

// The MoE layers a run records: checkpoint index, E and k (k as the mask sets it, if any).
std::vector<RunLayer> run_layers(const ModelConfig& config, const ExpertMask* mask = nullptr);

class RunResume {
public:
    // Finds the newest incomplete run of spec's model and trace key (unless `new_run`), else a
    // complete one, else creates the run.
    static RunResume start(RoutingStore& store, const RunSpec& spec, bool new_run);

    int64_t run_id() const { return run_id_; }
    bool resumed() const { return resumed_; }                  // continues an incomplete run
    bool already_complete() const { return already_complete_; }  // nothing to do
    // Sets a job result's run_id, resumed, already_complete (and complete with it); true when
    // the run is already complete and the job has nothing to do.
    template <typename Result>
    bool report_into(Result& result) const {
        result.run_id = run_id_;
        result.resumed = resumed_;
        if (already_complete_) result.already_complete = result.complete = true;
        return already_complete_;
    }
    // Whether the run already holds this document. A document finished with another text is
    // an input error naming `file` ("... changed since run N <verb> it").
    bool finished(int64_t domain_id, const std::string& split, const std::string& name, const std::string& text_hash,
                  const std::string& file, const std::string& verb) const;

private:
    int64_t run_id_ = 0;
    bool resumed_ = false, already_complete_ = false;
    std::map<std::tuple<int64_t, std::string, std::string>, std::string> finished_;  // -> text hash
};

}  // namespace moe::analysis
