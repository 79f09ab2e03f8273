"""ReAct on HotpotQA: speculate Wikipedia's answer while the real call is in flight."""
