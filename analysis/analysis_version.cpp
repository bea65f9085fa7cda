// Placeholder translation unit of the analysis layer until the routing store lands:
// reports the store schema version this build would write (none yet).
namespace moe::analysis {
int store_schema_version() { return 0; }
}  // namespace moe::analysis
