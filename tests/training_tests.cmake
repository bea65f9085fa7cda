# Training tools (tools/train/): runs the Python scripts on a miniature model and loads the
# export with the engine. Needs /usr/bin/python3 with python3-torch; skips without them.
moe_add_qtest(test_training LABELS unit slow SOURCES test_training.cpp)
# The committed embedded model against the training script's own test loss.
moe_add_qtest(test_embedded_model LABELS unit SOURCES test_embedded_model.cpp LIBS moe_analysis)
# The PyTorch peer of the benchmarks computes the engine's logits (needs python3-torch; skips without).
moe_add_qtest(test_torch_peer LABELS unit SOURCES test_torch_peer.cpp)
