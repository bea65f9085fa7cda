// The gpu-labelled suites' common start: skip (with the driver's reason) where there is no
// CUDA device.
#pragma once

#include <QtTest>

#include <string>

#include "engine/cuda/device.h"

// In a test function (initTestCase): QSKIP with the reason when no CUDA device is present.
#define MOE_SKIP_WITHOUT_GPU()                                                                           \
    do {                                                                                                 \
        std::string moe_why_;                                                                            \
        if (!moe::cuda::first_device(&moe_why_))                                                         \
            QSKIP(qPrintable(QString::fromStdString(moe_why_) + " — the CUDA parity tests need a GPU")); \
    } while (false)
