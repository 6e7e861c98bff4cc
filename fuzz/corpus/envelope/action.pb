
pb-a1traction"demo-target-a(Ђмын«32/
restart{"from":"cli"}ws://127.0.0.1:8765/