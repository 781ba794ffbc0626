#pragma once
#include "engine/nn/layers.h"
#include "engine/nn/module.h"
#include "engine/optim/sgd.h"
#include "engine/random.h"
