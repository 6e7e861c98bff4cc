
pb-e1trevent"demo-target-a(Ђмын«32
tboot[1,2]