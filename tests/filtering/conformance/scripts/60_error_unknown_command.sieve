# A compile error: an unknown command (line 4).
require "fileinto";
if true {
    frobnicate "x";
}
