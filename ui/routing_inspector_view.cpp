// RoutingInspectorView; see routing_inspector_view.h.
#include "ui/routing_inspector_view.h"

#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace moe::ui {

namespace {

// Expert hues spread by the golden ratio, so that neighbouring expert ids differ visibly.
ImU32 expert_colour(int32_t expert, float value = 0.85f) {
    if (expert < 0) return IM_COL32(60, 60, 64, 255);
    const float h = std::fmod(static_cast<float>(expert) * 0.6180340f, 1.0f);
    float r, g, b;
    ImGui::ColorConvertHSVtoRGB(h, 0.62f, value, r, g, b);
    return ImGui::ColorConvertFloat4ToU32(ImVec4(r, g, b, 1.0f));
}

// Highlight: rank 0 bright orange, later ranks fading towards the background.
ImU32 rank_colour(int64_t rank, int64_t k) {
    if (rank < 0) return IM_COL32(52, 52, 56, 255);
    const float f = k > 1 ? 1.0f - 0.6f * static_cast<float>(rank) / static_cast<float>(k - 1) : 1.0f;
    return ImGui::ColorConvertFloat4ToU32(ImVec4(0.2f + 0.8f * f, 0.2f + 0.45f * f, 0.2f * (1 - f) + 0.05f, 1.0f));
}

}  // namespace

RoutingInspectorView::RoutingInspectorView(QWidget* parent) : ImGuiWidget(parent) {
    setMinimumSize(200, 160);
}

void RoutingInspectorView::setRouting(const TokenRouting& routing) {
    routing_ = routing;
    for (const std::string& t : routing_.token_texts) addGlyphs(QString::fromStdString(t));
    hovered_.reset();
    scroll_to_ = 0;
    marked_ = -1;
    requestFrames();
}

void RoutingInspectorView::setMarkedRow(int64_t row) {
    marked_ = row;
    requestFrames();
}

void RoutingInspectorView::setHighlightExpert(int expert) {
    highlight_ = expert;
    requestFrames();
}

void RoutingInspectorView::scrollToRow(int64_t row) {
    scroll_to_ = row;
    requestFrames();
}

QPoint RoutingInspectorView::cellCenter(int64_t row, int64_t column) const {
    return QPoint(static_cast<int>(origin_x_ + label_w_ + (static_cast<float>(column) + 0.5f) * cell_w_),
                  static_cast<int>(origin_y_ + (static_cast<float>(row) + 0.5f) * row_h_));
}

void RoutingInspectorView::drawHeader(float x0, float y0, float cell_w) {
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImU32 text = ImGui::GetColorU32(ImGuiCol_Text);
    dl->AddText(ImVec2(x0 + 4, y0), ImGui::GetColorU32(ImGuiCol_TextDisabled), "token \\ layer");
    // Label every layer when there is room, else every 2nd, 5th, ...
    const float label_w = ImGui::CalcTextSize("00").x + 4;
    int64_t every = 1;
    for (int64_t step : {1, 2, 5, 10, 20, 50})
        if ((every = step) * cell_w >= label_w) break;
    for (int64_t l = 0; l < routing_.n_layers(); ++l) {
        if (l % every) continue;
        char buf[16];
        std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(routing_.layers[static_cast<size_t>(l)]));
        const float w = ImGui::CalcTextSize(buf).x;
        dl->AddText(ImVec2(x0 + label_w_ + (static_cast<float>(l) + 0.5f) * cell_w - w / 2, y0), text, buf);
    }
}

void RoutingInspectorView::drawImGui() {
    const ImGuiIO& io = ImGui::GetIO();
    ImGui::SetNextWindowPos(ImVec2(0, 0));
    ImGui::SetNextWindowSize(io.DisplaySize);
    ImGui::PushStyleVar(ImGuiStyleVar_WindowPadding, ImVec2(4, 4));
    ImGui::Begin("##inspector", nullptr,
                 ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoSavedSettings |
                     ImGuiWindowFlags_NoBringToFrontOnFocus | ImGuiWindowFlags_NoScrollWithMouse);
    ImGui::PopStyleVar();
    std::optional<std::pair<int64_t, int64_t>> hovered;
    const int64_t T = routing_.n_tokens(), L = routing_.n_layers();
    if (T == 0 || L == 0) {
        ImGui::TextDisabled("No document: select a run and a document above.");
    } else {
        row_h_ = std::floor(ImGui::GetTextLineHeight()) + 3;
        const ImVec2 top = ImGui::GetCursorScreenPos();
        const float avail = ImGui::GetContentRegionAvail().x - ImGui::GetStyle().ScrollbarSize;
        label_w_ = std::clamp(std::floor(avail * 0.3f), 90.0f, 170.0f);
        cell_w_ = std::clamp(std::floor((avail - label_w_) / static_cast<float>(L)), 6.0f, 36.0f);
        // Width the cells leave unused (a model of few layers) goes to the tokens' text.
        label_w_ = std::max(label_w_, std::min(300.0f, std::floor(avail - cell_w_ * static_cast<float>(L))));
        drawHeader(top.x, top.y, cell_w_);
        ImGui::Dummy(ImVec2(label_w_ + cell_w_ * static_cast<float>(L), row_h_ + 2));

        // No spacing between rows: row r starts exactly r · row_h below row 0, as the clipper,
        // cellCenter() and scrollToRow() assume.
        ImGui::PushStyleVar(ImGuiStyleVar_ItemSpacing, ImVec2(0, 0));
        ImGui::BeginChild("##rows", ImVec2(0, 0), false, ImGuiWindowFlags_NoSavedSettings);
        if (scroll_to_ >= 0) {
            ImGui::SetScrollY(static_cast<float>(scroll_to_) * row_h_);
            scroll_to_ = -1;
        }
        ImDrawList* dl = ImGui::GetWindowDrawList();
        const ImVec2 origin(ImGui::GetCursorScreenPos().x, ImGui::GetCursorScreenPos().y);
        origin_x_ = origin.x;
        origin_y_ = origin.y;  // row 0, scrolled (may be above the window)
        const ImVec2 mouse = io.MousePos;
        const bool mouse_here = ImGui::IsWindowHovered();
        const ImU32 text = ImGui::GetColorU32(ImGuiCol_Text), dim = ImGui::GetColorU32(ImGuiCol_TextDisabled);
        ImGuiListClipper clipper;
        clipper.Begin(static_cast<int>(T), row_h_);
        while (clipper.Step()) {
            for (int row = clipper.DisplayStart; row < clipper.DisplayEnd; ++row) {
                const ImVec2 p = ImGui::GetCursorScreenPos();
                char pos[16];
                std::snprintf(pos, sizeof pos, "%d", row);
                dl->AddText(ImVec2(p.x, p.y + 1), dim, pos);
                const std::string tok = display_token(routing_.token_texts[static_cast<size_t>(row)]);
                const float pos_w = ImGui::CalcTextSize("00000").x;
                dl->PushClipRect(ImVec2(p.x + pos_w, p.y), ImVec2(p.x + label_w_ - 4, p.y + row_h_), true);
                dl->AddText(ImVec2(p.x + pos_w, p.y + 1), text, tok.c_str());
                dl->PopClipRect();
                for (int64_t l = 0; l < L; ++l) {
                    const ImVec2 a(p.x + label_w_ + static_cast<float>(l) * cell_w_, p.y);
                    const ImVec2 b(a.x + cell_w_ - 1, a.y + row_h_ - 1);
                    const ImU32 c = highlight_ >= 0 ? rank_colour(routing_.rank_of(row, l, highlight_), routing_.layer_k[static_cast<size_t>(l)])
                                                    : expert_colour(routing_.expert(row, l, 0));
                    dl->AddRectFilled(a, b, c);
                    if (mouse_here && mouse.x >= a.x && mouse.x < a.x + cell_w_ && mouse.y >= a.y && mouse.y < a.y + row_h_) {
                        hovered = std::make_pair(static_cast<int64_t>(row), l);
                        dl->AddRect(ImVec2(a.x - 1, a.y - 1), ImVec2(b.x + 1, b.y + 1), IM_COL32(255, 255, 255, 255));
                    }
                }
                if (row == marked_)
                    dl->AddRect(ImVec2(p.x, p.y), ImVec2(p.x + label_w_ + cell_w_ * static_cast<float>(L) - 1, p.y + row_h_ - 1),
                                IM_COL32(255, 140, 0, 255), 0.0f, 0, 2.0f);
                ImGui::Dummy(ImVec2(label_w_ + cell_w_ * static_cast<float>(L), row_h_));
            }
        }
        clipper.End();
        if (hovered) {
            ImGui::BeginTooltip();
            ImGui::TextUnformatted(routing_.describe(hovered->first, hovered->second).c_str());
            ImGui::EndTooltip();
            if (ImGui::IsMouseClicked(0)) emit cellClicked(hovered->first, hovered->second);
        }
        ImGui::EndChild();
        ImGui::PopStyleVar();
    }
    ImGui::End();
    if (hovered != hovered_) {
        hovered_ = hovered;
        emit cellHovered(hovered ? hovered->first : -1, hovered ? hovered->second : -1);
    }
}

}  // namespace moe::ui
