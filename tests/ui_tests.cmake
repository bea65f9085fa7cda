# GUI suites (ui/, moe-workbench): real widgets driven by Qt Test on a small random model
# traced on worker threads (see tests/CMakeLists.txt for moe_add_qtest). Included only when
# the GUI is built. The panels and the heatmap need no GL: they run on the offscreen
# platform; the main window runs on a real X server (xvfb-run), as on a desktop.
moe_add_qtest(test_ui_job LABELS ui SOURCES test_ui_job.cpp LIBS moe_ui)
moe_add_qtest(test_ui_heatmap LABELS ui SOURCES test_ui_heatmap.cpp ui_test_support.h LIBS moe_ui)
moe_add_qtest(test_ui_main_window LABELS ui XVFB SOURCES test_ui_main_window.cpp ui_test_support.h LIBS moe_ui)
# The main window's layout on a laptop's short screen (1366 × 768).
if(MOE_XVFB_RUN)
  add_test(NAME test_ui_main_window_short_screen
           COMMAND ${MOE_XVFB_RUN} -a -s "-screen 0 1366x768x24" $<TARGET_FILE:test_ui_main_window>
                   theLeftDocksShareTheColumnOnAShortScreen)
  set_tests_properties(test_ui_main_window_short_screen PROPERTIES LABELS ui ENVIRONMENT "QT_QPA_PLATFORM=xcb")
  # ... and on a screen too narrow for three columns (1024 × 768).
  add_test(NAME test_ui_main_window_narrow_screen
           COMMAND ${MOE_XVFB_RUN} -a -s "-screen 0 1024x768x24" $<TARGET_FILE:test_ui_main_window>
                   theWindowFitsANarrowScreen theLeftDocksShareTheColumnOnAShortScreen)
  set_tests_properties(test_ui_main_window_narrow_screen PROPERTIES LABELS ui ENVIRONMENT "QT_QPA_PLATFORM=xcb")
endif()
add_dependencies(test_ui_main_window moe-workbench)  # theCommandLineNeedsNoDisplayForHelp runs it
moe_add_qtest(test_ui_inspector LABELS ui XVFB SOURCES test_ui_inspector.cpp ui_test_support.h LIBS moe_ui)
moe_add_qtest(test_ui_ablation LABELS ui SOURCES test_ui_ablation.cpp ui_test_support.h LIBS moe_ui)
moe_add_qtest(test_ui_chat LABELS ui SOURCES test_ui_chat.cpp ui_test_support.h LIBS moe_ui)
moe_add_qtest(test_ui_chat_server LABELS ui SOURCES test_ui_chat_server.cpp ui_test_support.h LIBS moe_ui)
moe_add_qtest(test_ui_monkey LABELS ui XVFB SOURCES test_ui_monkey.cpp ui_test_support.h LIBS moe_ui)
# The monkey holds the event loop to a 100 ms stall bound: it runs alone, not beside other suites.
set_tests_properties(test_ui_monkey PROPERTIES RUN_SERIAL TRUE)
