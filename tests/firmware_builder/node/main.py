from edgeiot import app

app.run()
