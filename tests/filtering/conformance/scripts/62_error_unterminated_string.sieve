# A compile error: a string that never ends (it starts on line 4).
require "fileinto";
if true {
    fileinto "Work;
}
