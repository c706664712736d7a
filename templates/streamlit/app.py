import streamlit as st

st.title("Hello from Streamlit")
n = st.slider("How many squares?", 1, 20, 5)
st.line_chart([i * i for i in range(n)])
st.write(f"The sum of the first {n} squares is {sum(i * i for i in range(n))}.")
